// Stand-in for infiniflow/ragflow web/src/constants/llm.ts (HEAD, read at commit 06aa8066): the
// `LLMFactory` enum and the `IconMap` object, trimmed to a few members; our own copy of the shape.
export enum LLMFactory {
  Jina = 'Jina',
  HuggingFace = 'HuggingFace',
  OpenAiAPICompatible = 'OpenAI-API-Compatible',
  BAAI = 'BAAI',
}

// Please lowercase the file name
export const IconMap = {
  [LLMFactory.Jina]: 'jina',
  [LLMFactory.HuggingFace]: 'huggingface',
  [LLMFactory.OpenAiAPICompatible]: 'openai-api',
  [LLMFactory.BAAI]: 'baai',
};
