// Stand-in for infiniflow/ragflow web/src/pages/user-setting/constants.tsx (v0.22 through HEAD): the
// factories whose "add model" dialog asks for a base URL. Our own trimmed copy of the shape.
import { LLMFactory } from '@/constants/llm';

export const LocalLlmFactories = [
  LLMFactory.OpenAiAPICompatible,
  LLMFactory.HuggingFace,
];
